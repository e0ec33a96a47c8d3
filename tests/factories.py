from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from jobs.models import Job


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    owner = factory.SubFactory(UserFactory)
    model_type = "logreg"
    dataset = "iris"
    num_workers = 2
    epochs = 3
    batch_size = 16
    learning_rate = 0.05
    optimizer = "adam"
    seed = 0
    queue = "cpu"
    threads = 1
    input_shape = [4]
    num_classes = 3
    total_tasks = factory.LazyAttribute(lambda j: j.num_workers * j.epochs)
