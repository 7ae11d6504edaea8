"""Pure mappers from the shop's own systems to contract messages, one module per system.

No I/O here: a mapper takes a vendor payload (already verified and parsed) and returns
`Out` records for our input topics, or raises `MappingError` with the reason that goes
into the dead-letter record. The gateway (`stockguard.connectors.gateway`) does the I/O.
The mapping tables are ../shared/INTEGRATIONS.md, "In".
"""
