"""Events of the registry that other parts observe (the webhooks) without it importing them.

* ``version_created(version_id)``: a version was made (sent once it committed);
* ``alias_moved(alias_id, previous_version, version)``: an alias was set or moved
  (``previous_version`` None for a new alias; sent once it committed).
"""

from __future__ import annotations

from django.dispatch import Signal

version_created = Signal()
alias_moved = Signal()
