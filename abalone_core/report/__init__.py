"""The report: what a row of the tables is, the paper's figures, the claims judged on paired
seeds, chapter 8's answer and the chapters' sentences.

Modules
-------
``rows``      what a row of the tables is and which row a result belongs to
``paper``     the paper's reported figures and row names
``claims``    the paper's claims judged on paired per-seed differences
``findings``  chapter 8's answer built from the committed grids
``prose``     the chapters' sentences that state a number, an order or a verdict
"""
