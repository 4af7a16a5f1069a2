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
