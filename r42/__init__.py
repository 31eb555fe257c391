"""r42: score a prompt, rank the models that could answer it, and run it on the best one."""

__version__ = "0.1.0"
