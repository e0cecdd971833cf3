"""The HDF5 session file: schema, writer, reader, inspect."""
