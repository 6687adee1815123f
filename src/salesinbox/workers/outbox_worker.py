"""Keeps the outbox moving: sends what is due (retries, send-later) and repairs what a dead process left;
also files drafts the mail server could not take when they were saved (``drafts.settle``).

Many of these may run at once (several processes): ``outbox.deliver`` claims
each message with a conditional UPDATE, so only one of them sends it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from salesinbox.services import drafts, outbox
from salesinbox.services.unit_of_work import Deps

log = logging.getLogger(__name__)
EVERY = 2.0  # seconds between looks at the outbox
RECOVER_EVERY = 60.0


async def keep_sending(deps: Deps, stop: asyncio.Event, account_id: uuid.UUID | None = None) -> None:
    since_recovery = RECOVER_EVERY
    while not stop.is_set():
        try:
            if since_recovery >= RECOVER_EVERY:
                await outbox.recover(deps, account_id=account_id)
                await drafts.settle(deps)  # drafts the mail server did not take yet, or still to be removed
                since_recovery = 0.0
            await outbox.deliver_due(deps, account_id=account_id)
        except Exception:  # a fault of ours must not end the loop: log it, look again later
            log.exception("outbox pass failed")
        try:
            await asyncio.wait_for(stop.wait(), EVERY)
        except TimeoutError:
            since_recovery += EVERY
