"""Rule and CO2e tables for recsys.diet (a package so the CSVs ship in the wheel)."""
