"""Labels -> measurements -> stage: ``measure.analyze_case(ct, labels, AnalysisOptions)`` finds
the lesions (``lesions``), measures them, triages cysts (``cyst``), checks vessel contact
(``vessel_contact``), computes volumes (``volumetry``) and stages (``staging``); the result is the
typed ``record.Measurements``. Writes no files (see :mod:`LiverLVTLib.outputs`)."""
