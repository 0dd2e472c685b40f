package lists

// table is the bucket array of a Set.
//
// Backing it with memory advised for transparent huge pages (mmap plus MADV_HUGEPAGE) was
// tried and measured no faster on the target VM, so it stays an ordinary heap slice.
type table struct {
	b []bucket
}

func newTable(nb int) table { return table{b: make([]bucket, nb)} }

func (t *table) free() { t.b = nil }
