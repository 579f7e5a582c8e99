"""The files the course ships, installed as the package ``unet_course_data``.

This folder is the repository's ``data/`` (the course's layout: README.md says what each file is
and where it came from) and, through pyproject.toml's ``package-dir``, a package of the wheel, so
that ``unet_lib.course_file("unet_nuclei.pt")`` finds a file from any working directory, in a
checkout installed with ``pip install -e .`` as in an installed wheel. Nothing to import here.
"""
