"""The named configs (``tfcovseg train --config demo``), installed as ``tfcovseg.configs``."""
