"""Files a case's analysis leaves behind: ``measurements.json`` and ``lesions.csv``
(:mod:`.writer`), surface models (:mod:`.meshes`) and the HTML report (:mod:`.report`)."""
