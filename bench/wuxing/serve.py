"""Serve wuxing for the benchmark: ``serve.py butterfly|pony --db FILE --port P --threads N``.

``butterfly``: the real stack (kernel + store + router + trace + wuxing) built from the
installed plugins. ``pony``: a minimal hand-written WSGI app on the same tables that
runs the same queries as ``/wuxing/instance_get`` and ``/wuxing/instance_update_item``
(no parameter checking beyond the minimum, no logs, no history formatting).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from urllib.parse import parse_qsl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))
from peer_server import peer_server

NAMESPACE, INSTANCE, ITEM = "bench", "web-1", "i|cpu"


def pony_app(db_path: str):
    """The baseline WSGI app over the wuxing tables of ``db_path``."""
    from pony.orm import Database, db_session, select

    from butterfly_wuxing.models import define_entities

    db = Database()
    define_entities(db)
    db.bind(provider="sqlite", filename=db_path)
    db.generate_mapping(create_tables=False)
    Instance, Item, History = db.entities["WuxingInstance"], db.entities["WuxingItem"], db.entities["WuxingHistory"]
    columns = {
        "int": "value_int",
        "float": "value_float",
        "bool": "value_bool",
        "string": "value_string",
        "text": "value_text",
        "json": "value_text",
    }

    def reply(start_response, body):
        data = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    @db_session
    def instance_get(params):
        instance = Instance.get(namespace=params["namespace"], instance_name=params["instance_name"])
        items = select(i for i in Item if i.instance == instance).order_by(lambda i: i.id)
        return {"stat": "OK", "data": {i.item_name: getattr(i, columns[i.item_type]) for i in items}}

    @db_session
    def instance_update_item(params):
        instance = Instance.get(namespace=params["namespace"], instance_name=params["instance_name"])
        item = Item.get_for_update(instance=instance, item_name=params["item_name"])
        old, new, now = item.value_int, int(params["item_value"]), datetime.datetime.now()
        item.value_int, item.u_time = new, now
        History(
            item_id=item.id,
            namespace=instance.namespace,
            instance_name=instance.instance_name,
            item_name=item.item_name,
            item_type=item.item_type,
            cmd="update",
            old_value=json.dumps(old),
            new_value=json.dumps(new),
            c_time=now,
        )
        return {"stat": "OK", "data": {"item_id": item.id, "item_value": new, "old_value": old}}

    routes = {"/wuxing/instance_get": instance_get, "/wuxing/instance_update_item": instance_update_item}

    def app(environ, start_response):
        params = dict(parse_qsl(environ.get("QUERY_STRING", "")))
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            params.update(json.loads(environ["wsgi.input"].read(length) or b"{}"))
        return reply(start_response, routes[environ["PATH_INFO"]](params))

    return app


def butterfly_app(db_path: str, work: str):
    """The real Butterfly kernel with its installed plugins (no Redis-backed ones)."""
    from kernel import Kernel

    return Kernel.create(
        config={},
        environ={"BUTTERFLY_DISABLE_PLUGINS": "mq,ruqi,auth"},
        overrides={
            "store.url": f"sqlite:///{db_path}",
            "server.data_dir": f"{work}/data",
            "server.log_dir": f"{work}/logs",
            "router.handlers_dir": f"{work}/no_handlers",
            "router.static_dir": "",
        },
    )


def seed(db_path: str, work: str) -> None:
    """Create the section and the instance the benchmark reads and updates."""
    from butterfly_wuxing import wuxing_of

    wx = wuxing_of(butterfly_app(db_path, work))
    wx.ensure_section(
        NAMESPACE,
        "host",
        "1",
        {
            ITEM: ("int", 4, "cores"),
            "region": ("string", "bj", ""),
            "f|load": ("float", 0.5, ""),
            "j|tags": ("json", ["a"], ""),
        },
    )
    wx.instance_create(NAMESPACE, INSTANCE, "host", "1")


def main() -> int:
    """Parse the arguments; seed, or serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=("butterfly", "pony", "seed"))
    parser.add_argument("--db", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    if args.app == "seed":
        seed(args.db, args.work)
        return 0
    app = butterfly_app(args.db, args.work) if args.app == "butterfly" else pony_app(args.db)
    # NOTE: the waitress settings kernel/server.py uses, so only the app differs.
    peer_server(app, args.port, args.threads).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
