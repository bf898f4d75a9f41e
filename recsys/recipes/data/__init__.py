"""Recipe catalog data (YAML); a package so the files ship in the wheel."""
