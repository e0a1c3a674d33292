"""Where records go: the formats (``writers``), claimed output files and their metadata
(``files``), the HTML report (``report``) and sorted folders (``organize``). No torch here."""
