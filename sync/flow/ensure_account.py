"""Step `account:<name_key>`: the expense account a line posts to, found or created exactly once.

The cache is looked at first (kept current by the accounts poll). When the cache holds no chart
at all (no backfill yet), or when an earlier create may have reached Alegra unanswered, the chart
is loaded from Alegra once before deciding to create. A new account goes under
`EXPENSE_PARENT_ACCOUNT_ID`, or, when that is unset, directly under the root of the expense
branch (the top expense account, e.g. "Gastos"): that is where a person would look for it, and
it needs no configuration to work out of the box.
"""

from __future__ import annotations

from sync.alegra import payloads, resources
from sync.alegra.records import AccountRecord, account_from_alegra, flatten_accounts
from sync.flow.context import PRIORITY, FlowEnv, FlowFailed, StepResult, StepScope
from sync.names import name_key
from sync.store import accounts

SOURCE = "receipt"
CHART_LOCK = "load:accounts"


async def ensure_account(env: FlowEnv, name: str, scope: StepScope) -> StepResult:
    """Resolve an expense account name to a postable Alegra account id.

    Raises AlegraError, or FlowFailed when the name is a summary or inactive account, or when
    no parent account is known for a new one.
    """
    key = name_key(name)
    cached = await accounts.find_expense_account(env.db, key)
    if cached is not None and not scope.resumed:  # the common case needs no lock
        return _found(cached)
    async with env.locks.hold(f"account:{key}"):
        found = await accounts.find_expense_account(env.db, key)
        if found is None and (scope.resumed or await accounts.count_accounts(env.db) == 0):
            await load_chart(env, only_if_empty=not scope.resumed)
            found = await accounts.find_expense_account(env.db, key)
        if found is not None:
            return _found(found)
        return await _create(env, name, scope)


async def load_chart(env: FlowEnv, *, only_if_empty: bool) -> int:
    """Load Alegra's chart of accounts into the cache (once, under a lock). Returns rows loaded."""
    async with env.locks.hold(CHART_LOCK):
        if only_if_empty and await accounts.count_accounts(env.db) > 0:
            return 0
        rows = await resources.list_categories(env.alegra, priority=PRIORITY)
        records = flatten_accounts(rows)
        return await accounts.upsert_accounts(env.db, records, source=SOURCE)


def _found(account: AccountRecord) -> StepResult:
    if not account.is_leaf:
        raise FlowFailed(
            "account_not_postable",
            f"expense account {account.name!r} is a summary account; bills post to leaf accounts",
            account_id=account.alegra_id,
        )
    if account.status == "inactive":
        raise FlowFailed(
            "account_inactive",
            f"expense account {account.name!r} is inactive in Alegra",
            account_id=account.alegra_id,
        )
    return StepResult("found", account.alegra_id, {"name": account.name})


async def _parent_id(env: FlowEnv) -> str:
    if env.settings.expense_parent_account_id:
        return env.settings.expense_parent_account_id
    root = await accounts.root_expense_account(env.db)
    if root is None:
        raise FlowFailed(
            "no_expense_parent",
            "no expense account to create the new account under: set EXPENSE_PARENT_ACCOUNT_ID",
        )
    return root.alegra_id


async def _create(env: FlowEnv, name: str, scope: StepScope) -> StepResult:
    parent_id = await _parent_id(env)
    await scope.attempting()
    created = await resources.create_category(
        env.alegra, payloads.category_payload(name, parent_id), priority=PRIORITY
    )
    record = account_from_alegra(created)
    await accounts.upsert_accounts(env.db, [record], source=SOURCE)
    return StepResult("created", record.alegra_id, {"name": record.name, "parent_id": parent_id})
