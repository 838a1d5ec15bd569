"""The built-in phantom abdomen: a CT with exact truth labels (``phantom.make_phantom``,
``make_small_phantom``) built from analytic shapes (``shapes``, ``anatomy``)."""
