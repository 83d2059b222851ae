"""Reading and writing CT volumes, the prepared-dataset manifest, converters and phantoms."""
