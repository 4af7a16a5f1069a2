"""The pluggy markers: ``hookspec`` for specs, ``hookimpl`` for implementations."""

import pluggy

PROJECT = "butterfly"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
