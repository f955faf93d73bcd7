"""Enhancement methods, one file each, and the parts two or more of them share."""
