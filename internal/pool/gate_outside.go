package pool

// TakeOutside takes a token for a server connection opened outside the
// gate's pools (the LISTEN fan-out's listener connection, one per pool
// with listening clients, which max_db_connections counts too), if the
// limit allows; it never waits and evicts nothing. GiveOutside returns
// it once the connection is closed.
func (g *Gate) TakeOutside() bool { return g.take(nil, false) }

// GiveOutside returns a token TakeOutside took.
func (g *Gate) GiveOutside() { g.give(1) }
