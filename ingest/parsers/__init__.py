"""Chat-export parsers: each turns one export into a stream of records, with no Django imports."""
