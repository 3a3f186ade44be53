"""The platform's schema as the toolkit knows it: the six entities and their spellings
(``concepts``), the live schema read once (``reflect``, ``tableplan``), the optional schema
map (``schemamap``) and the foreign-key graph (``fkgraph``, read from the catalogs by
``fkreflect``)."""
