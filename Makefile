# TensorFleet: `make run` starts the whole platform on this machine, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pyproject.toml files too: their entry points (the models) are read at install time.
INSTALLED_FROM := requirements.txt requirements-dev.txt pyproject.toml examples/tensorfleet-example-plugin/pyproject.toml
STAMP := $(VENV)/.installed-$(shell cat $(INSTALLED_FROM) | cksum | cut -d' ' -f1)

.PHONY: setup run test test-unit test-integration lint format bench clean

$(STAMP): $(INSTALLED_FROM)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	# The project itself, so its built-in models register under tensorfleet.models as a plugin's do.
	$(BIN)/pip install --disable-pip-version-check -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)  ## create the virtualenv, install pinned requirements (runtime and development) and the project

run: setup  ## start the fleet (API, workers, Flower, Redis) and train a demo job
	$(BIN)/python manage.py runfleet --demo

test: setup  ## unit and integration tests (needs PostgreSQL and Redis; see .ci/run)
	$(BIN)/python -m pytest

test-unit: setup
	$(BIN)/python -m pytest -m "not integration"

test-integration: setup
	$(BIN)/python -m pytest -m integration

lint: setup  ## ruff, the import contracts (pyproject.toml) and mypy over jobs, workers, storage_app
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PYTHONPATH=. $(BIN)/lint-imports --no-cache
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup  ## platform vs plain PyTorch, written to BENCHMARKS.md
	$(BIN)/python manage.py benchmark

clean:
	rm -rf var .pytest_cache

# --- Deployment (docker/ and k8s/; see docs/DEPLOY.md)
IMAGE ?= tensorfleet
TAG ?= latest
K8S ?= k8s
COMPOSE := docker compose -f docker/docker-compose.yml --env-file .env

.PHONY: build push compose-up compose-down k8s-deploy k8s-delete logs

.env:
	cp .env.example .env

build:  ## the CPU and CUDA images
	docker build -f docker/Dockerfile --target cpu -t $(IMAGE):$(TAG) .
	docker build -f docker/Dockerfile --target cuda -t $(IMAGE)-cuda:$(TAG) .

push: build  ## IMAGE=registry/org/tensorfleet TAG=version
	docker push $(IMAGE):$(TAG)
	docker push $(IMAGE)-cuda:$(TAG)

compose-up: .env  ## COMPOSE_PROFILES=gpu adds the GPU worker
	TENSORFLEET_IMAGE=$(IMAGE) TENSORFLEET_TAG=$(TAG) $(COMPOSE) up -d --build

compose-down: .env
	$(COMPOSE) down

k8s-deploy:  ## K8S=k8s/base on a cluster without KEDA; create the Secret first
	kubectl -n tensorfleet delete job tensorfleet-migrate --ignore-not-found
	kubectl kustomize $(K8S) | sed -e 's#registry.example.com/tensorfleet-cuda:latest#$(IMAGE)-cuda:$(TAG)#' -e 's#registry.example.com/tensorfleet:latest#$(IMAGE):$(TAG)#' | kubectl apply -f -
	kubectl -n tensorfleet wait --for=condition=complete job/tensorfleet-migrate --timeout=15m

k8s-delete:  ## deletes the namespace too: the Secret and the volume claims (data) included
	kubectl delete -k $(K8S) --ignore-not-found

logs: .env  ## compose logs; for Kubernetes: kubectl -n tensorfleet logs -f -l app.kubernetes.io/part-of=tensorfleet --prefix
	$(COMPOSE) logs -f --tail=200
