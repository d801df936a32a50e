"""ReID Workbench."""
