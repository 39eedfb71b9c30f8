package sqlscan

// keyword is one of the few keywords Scan acts on; every other word is
// kwNone.
type keyword uint8

const (
	kwNone keyword = iota
	kwAll
	kwBegin
	kwClose
	kwConstraints
	kwCreate
	kwDeallocate
	kwDeclare
	kwDiscard
	kwDrop
	kwGlobal
	kwHold
	kwInto
	kwListen
	kwLoad
	kwLocal
	kwOr
	kwPrepare
	kwReplace
	kwReset
	kwSet
	kwStart
	kwTemp
	kwTemporary
	kwTransaction
	kwUescape
	kwUnlisten
	kwUnlogged
	kwWithout
)

// lookup finds an unquoted word's keyword. It runs for every word of every
// query, so it switches on the length first: most identifiers are rejected
// without comparing a single byte.
func lookup(w string) keyword {
	switch len(w) {
	case 2:
		return pick(w, "or", kwOr)
	case 3:
		return pick2(w, "set", kwSet, "all", kwAll)
	case 4:
		switch w[0] | 0x20 {
		case 'd':
			return pick(w, "drop", kwDrop)
		case 'l':
			return pick(w, "load", kwLoad)
		case 't':
			return pick(w, "temp", kwTemp)
		case 'i':
			return pick(w, "into", kwInto)
		case 'h':
			return pick(w, "hold", kwHold)
		}
	case 5:
		switch w[0] | 0x20 {
		case 'r':
			return pick(w, "reset", kwReset)
		case 'c':
			return pick(w, "close", kwClose)
		case 'b':
			return pick(w, "begin", kwBegin)
		case 's':
			return pick(w, "start", kwStart)
		case 'l':
			return pick(w, "local", kwLocal)
		}
	case 6:
		switch w[0] | 0x20 {
		case 'l':
			return pick(w, "listen", kwListen)
		case 'c':
			return pick(w, "create", kwCreate)
		case 'g':
			return pick(w, "global", kwGlobal)
		}
	case 7:
		switch w[0] | 0x20 {
		case 'd':
			return pick2(w, "discard", kwDiscard, "declare", kwDeclare)
		case 'p':
			return pick(w, "prepare", kwPrepare)
		case 'r':
			return pick(w, "replace", kwReplace)
		case 'u':
			return pick(w, "uescape", kwUescape)
		case 'w':
			return pick(w, "without", kwWithout)
		}
	case 8:
		return pick2(w, "unlisten", kwUnlisten, "unlogged", kwUnlogged)
	case 9:
		return pick(w, "temporary", kwTemporary)
	case 10:
		return pick(w, "deallocate", kwDeallocate)
	case 11:
		return pick2(w, "transaction", kwTransaction, "constraints", kwConstraints)
	}
	return kwNone
}

func pick(w, kw string, k keyword) keyword {
	if eqFold(w, kw) {
		return k
	}
	return kwNone
}

func pick2(w, kw1 string, k1 keyword, kw2 string, k2 keyword) keyword {
	if eqFold(w, kw1) {
		return k1
	}
	return pick(w, kw2, k2)
}
