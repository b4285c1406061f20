"""Built-in Graph sources (the catalogue) and the helpers some of them need."""
