"""Every released version of each schema, as ``<stem>.v<N>.avsc``.

A package only so that its ``.avsc`` files are installed with hoststream. See
:mod:`schemas._loader` for how the versions are used.
"""
