"""The datasets themselves, apart from the tasks that read them: building MeDiSumCode from MIMIC-IV
(``medisumcode``), streaming big CSV files (``csvstream``), naming a dataset's version (``versions``),
downloading the public ones (``fetch``) and the study's published numbers (``published``)."""
