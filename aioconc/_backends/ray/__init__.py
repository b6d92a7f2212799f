"""Ray mode: each worker is one Ray actor, each call an ``ObjectRef``.

* ``_worker`` — the driver side: ``RayWorker`` (dispatch, watching the actor,
  closing), ``RayTaskRunner`` (plain functions as Ray tasks), connecting to
  Ray (``ensure_ray``); ``backend``;
* ``_calls`` — calls in flight: pending refs finished on Ray's thread, Ray's
  errors mapped to the user's and aioconc's;
* ``_actor`` — the actor side: the actor class that hosts the user's instance;
* ``_limits`` — shared limit sets, served by one async Ray actor.

Unlike process mode's child side, Ray's actor processes import aioconc
normally (``_actor``, ``_limits`` and what they use).  ``ray`` itself is
imported only inside functions, when the first Ray worker is made, so aioconc
imports without Ray installed.  This file imports nothing: ``get_backend``
imports ``_worker``.
"""
