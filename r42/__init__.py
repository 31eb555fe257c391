"""r42: score a prompt, rank the models that could answer it, and run it on the best one.

The core: scoring/ (prompt -> score), catalog/ (models; Catalog.resolve turns a name into a Target),
ranking.py and routing.py (Router: score, rank, plan, the privacy guard), executor.py (runs the
planned candidates under one Fallback policy), providers/ and formats/ (the wire), store/. Registries
are defined once: settings in config.Settings, modes in modes.py, protocols in protocols.py. The
faces: cli/ (click) and server/ (`r42 serve`); the core imports neither. README "How the code is
organised" says which files a new provider, mode, endpoint or setting touches.
"""

__version__ = "0.1.0"
