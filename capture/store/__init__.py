"""The HDF5 session file (docs/session-format.md): ``schema``, ``writer``, ``reader``, ``edits`` (correction,
annotation), ``recovery`` (compaction, a killed writer's file), ``summary`` (what inspect prints), the annotation
part (``annotations``), integrity, privacy, ``radgaze inspect`` (``inspect_cmd``)."""
