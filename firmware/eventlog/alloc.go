package eventlog

import (
	"sync"

	"modernc.org/libc"
)

// pinAllocator works around a pathology of modernc.org/memory, the allocator
// behind the pure-Go SQLite: each size class up to 16 KiB is carved out of
// 64 KiB mmap'd pages, and a page is unmapped as soon as its last block is
// freed. SQLite's B-tree balancing allocates and frees a 10-16 KiB scratch
// buffer on every page split, so with no other block of that class alive
// each split cost an mmap and a munmap: about a third of the writer's time
// at 20k events/s. Holding one block of every class for the life of the
// process keeps one page per class mapped (about 1 MiB of address space,
// one touched 4 KiB page per class) and turns those system calls into
// free-list pushes and pops.
var pinAllocator = sync.OnceFunc(func() {
	tls := libc.NewTLS()
	defer tls.Close()
	for size := 16; size <= 16<<10; size <<= 1 {
		// Never freed, on purpose.
		libc.Xmalloc(tls, libc.Tsize_t(size))
	}
})
