"""What the user named, as inputs: files, folders, globs, stdin, URLs and dataset rows
(``sources``, ``fetch``, ``datasets``), and their bytes made upright RGB images (``decode``,
``photo_formats``). No torch here."""
