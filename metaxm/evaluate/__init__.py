"""The evaluator: held-out modalities x adaptation strategies x budgets -> the transfer report."""
