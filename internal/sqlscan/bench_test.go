package sqlscan

import (
	"strings"
	"testing"
)

// ormQuery is a 2 kB query of the kind an ORM sends: long column lists,
// quoted identifiers, a comment tag, parameters and a string literal.
var ormQuery = func() string {
	var b strings.Builder
	b.WriteString("/* app=shop,controller=orders */ SELECT ")
	for i := 0; b.Len() < 1700; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(`"orders"."column_`)
		b.WriteByte(byte('a' + i%26))
		b.WriteString(`" AS "orders_column_`)
		b.WriteByte(byte('a' + i%26))
		b.WriteByte('"')
	}
	b.WriteString(` FROM "orders" INNER JOIN "customers" ON "customers"."id" = "orders"."customer_id"` +
		` WHERE "orders"."status" = 'open' AND "orders"."created_at" > $1 AND "customers"."region" IN ($2, $3, $4)` +
		` ORDER BY "orders"."created_at" DESC LIMIT 50 OFFSET $5`)
	for b.Len() < 2048 {
		b.WriteByte(' ')
	}
	return b.String()
}()

var benchQueries = [...]string{
	"SELECT abalance FROM pgbench_accounts WHERE aid = $1;",
	ormQuery,
	"SET search_path TO x",
}

var sink Effects

func BenchmarkScan(b *testing.B) {
	for _, bc := range []struct{ name, q string }{
		{"pgbench", benchQueries[0]},
		{"orm2k", benchQueries[1]},
		{"set", benchQueries[2]},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.q)))
			for b.Loop() {
				sink = Scan(bc.q)
			}
		})
	}
}
