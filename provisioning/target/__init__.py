"""The target database: URL parsing and the remote guard (``url``), resolving a URL or the
embedded server (``resolve``, ``embedded``), the state directory, and the binary COPY loop
(``copyload``, with its encoder ``copyencode``) through which every row is written."""
