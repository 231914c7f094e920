"""Former home of the Skebby account APIs, now in :mod:`channels.skebby` (one module per area).

Kept so older imports of these names keep working; new code imports from
``channels.skebby_gateway``.
"""

from __future__ import annotations

from channels.skebby.models import MoType as MoType
from channels.skebby.models import QueryValue as QueryValue
from channels.skebby.models import SkebbyReply as SkebbyReply
from channels.skebby.models import TwoFactorResult as TwoFactorResult
from channels.skebby.wire import skebby_date as skebby_date
