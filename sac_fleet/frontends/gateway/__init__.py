"""The HTTP gateway (`sac fleet serve`): REST, SSE and A2A over one open sac_fleet.api.Fleet.

A frontend: it calls the Fleet and the NodeClients it holds, and maps SacError through schema.ERROR_TABLE.
"""
