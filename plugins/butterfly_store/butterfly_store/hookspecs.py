"""Hooks butterfly-store adds to the kernel's plugin manager (``butterfly_add_hookspecs``)."""

from __future__ import annotations

from kernel import hookspec

# --------------------------------------------------------------------------------------
# store: called once per kernel, on the main thread, inside ``butterfly_configure``
# --------------------------------------------------------------------------------------


@hookspec
def butterfly_store_define_entities(db):
    """Declare the plugin's pony entities on the shared database.

    Runs on the main thread during the store's ``butterfly_configure`` (which is
    ``trylast``, so every other plugin's configure ran first), before ``bind`` and
    ``generate_mapping``. Define the classes *inside* the implementation
    (``class Job(db.Entity): ...``) so every kernel gets a fresh set; fetch them
    later with ``get_db(kernel).entities["Job"]``. Give each entity an explicit
    ``_table_`` prefixed with the plugin's name (``ruqi_job``) — every plugin shares
    one schema. The hook may run more than once per kernel (once per connection
    attempt, each time on a new ``Database``): define entities and nothing else.
    Implement it with ``@hookimpl(optionalhook=True)`` so the plugin still loads
    without butterfly-store.

    :param db: a fresh, unbound :class:`pony.orm.Database`
    :return: ``None``
    """


@hookspec
def butterfly_store_upgrades():
    """Ship the steps that bring the plugin's tables from its older versions to this one.

    pony creates missing tables but never changes one that exists: a new column on an
    existing table needs a step. Called once per kernel during the store's
    ``butterfly_configure``, after the mapping is generated. Return the plugin's steps
    in the order they must run; a step's ``id`` is recorded in ``butterfly_schema``
    once applied and must never be reused. Steps run at start-up (``[store]
    auto_upgrade``) or with ``butterfly store upgrade``, under a lock every instance
    shares, before pony creates missing tables; a step none of whose ``tables`` exist
    yet is recorded without running. Implement it with ``@hookimpl(optionalhook=True)``.

    :return: a list of :class:`butterfly_store.schema.UpgradeStep`
        (``UpgradeStep(id, description, run, tables)``; ``run(ctx)`` gets a
        :class:`butterfly_store.schema.SchemaContext`)
    """
