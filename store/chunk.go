package store

// maxBinds bounds the bind parameters of one statement, below every
// database's limit: SQLite (modernc) 32766, PostgreSQL 65535. Multi-row
// statements are split into chunks of at most this many parameters, so a
// message with thousands of resources is a few statements, never an error.
const maxBinds = 30000

// maxColumns bounds the select list of one statement below PostgreSQL's 1664
// target-list entries (LockForPost takes one advisory lock per column).
const maxColumns = 1000

// chunks splits n rows of perRow parameters each (after fixed leading ones)
// into [lo, hi) ranges that stay below maxBinds.
func chunks(n, perRow, fixed int) [][2]int {
	size := max(1, (maxBinds-fixed)/perRow)
	var out [][2]int
	for lo := 0; lo < n; lo += size {
		out = append(out, [2]int{lo, min(n, lo+size)})
	}
	return out
}
