"""demo_workflow: the handlers of the 星桥 xingqiao demo workflows (``workflows.py``).

``word_count`` splits a text, counts the words of each part in parallel (fan-out),
adds the counts up (fan-in) and publishes the total; ``greet`` is the example of
the design document, over ``demo_api``. Each handler is a plain route too:
``/demo_workflow/count?chunk=a b c`` answers ``{"stat": "OK", "words": 3}``.
Run a job with ``butterfly xingqiao create word_count text="..." parts:=4 --wait``
(needs ``[mq] redis_url``).
"""

from __future__ import annotations

from pathlib import Path

from butterfly_router import retstat

#: the most parts ``split`` makes
MAX_PARTS = 100


def split(req, text: str, parts: int = 4):
    """``/demo_workflow/split?text=...&parts=4`` → ``{"chunks": [...]}``: ``parts`` runs of whole words.

    :param req: the request
    :param text: any text
    :param parts: how many chunks (1..100); some may be empty
    :return: ``(stat, data)``
    """
    if not 1 <= parts <= MAX_PARTS:
        return retstat.ERR_BAD_PARAMS, {"errors": [{"param": "parts", "reason": f"must be 1..{MAX_PARTS}"}]}
    words = text.split()
    size = -(-len(words) // parts) if words else 0
    chunks = [" ".join(words[i * size : (i + 1) * size]) for i in range(parts)]
    return retstat.OK, {"chunks": chunks}


def count(req, chunk: str = ""):
    """``/demo_workflow/count?chunk=a b c`` → ``{"words": 3, "longest": "a"}``.

    :param req: the request
    :param chunk: some words
    :return: ``(stat, data)``
    """
    words = chunk.split()
    return retstat.OK, {"words": len(words), "longest": max(words, key=len, default="")}


def total(req, counts: list[int], longest: list[str] | None = None):
    """``/demo_workflow/total`` → ``{"words": sum(counts), "longest": ...}`` (the fan-in).

    :param req: the request
    :param counts: the word count of every part
    :param longest: the longest word of every part
    :return: ``(stat, data)``
    """
    return retstat.OK, {"words": sum(counts), "parts": len(counts), "longest": max(longest or [], key=len, default="")}


def publish(req, words: int, title: str = "word count"):
    """Write ``<data_dir>/demo_workflow/report.txt``; fails with ``ERR_REPORT_LOCKED`` while ``LOCKED`` exists there.

    The lock file stands for an outside cause (a full disk, a downstream service down):
    the task fails, and after the cause is removed ``retry_job`` runs only this task again.

    :param req: the request
    :param words: the total to publish
    :param title: the report's first line
    :return: ``(stat, data)``
    """
    folder = Path(req.kernel.data_dir) / "demo_workflow"
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "LOCKED").exists():
        return "ERR_REPORT_LOCKED", {"reason": f"{folder / 'LOCKED'} exists"}
    report = folder / "report.txt"
    report.write_text(f"{title}\n{words} words\n", encoding="utf-8")
    return retstat.OK, {"report": str(report), "words": words}
