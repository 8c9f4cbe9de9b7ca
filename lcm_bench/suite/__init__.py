"""Suite files -> validated frozen specs -> the grid of cells."""
