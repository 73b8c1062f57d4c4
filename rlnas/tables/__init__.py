"""Lookup tables: recorded validation accuracies of whole search spaces, the project's and the field's."""
