package broker

// handlerStack is the stack a message's handler needs at its deepest
// (decode, translate, rules, the gate, publish), a power of two: the Go
// runtime doubles a goroutine's stack until it fits, so this much is
// asked for once, at the start, instead of in several steps, each of
// which copies the whole stack so far. In the benchmark's profile no
// handler grew past it; 32 KiB would be a large stack, which the runtime
// takes from the heap, not from its per-CPU cache.
const handlerStack = 16 << 10

// growStack makes the calling goroutine's stack at least about
// handlerStack bytes, in one step. The router starts each message's
// handler on a new goroutine, whose stack starts small; growing it by
// doubling on the way down cost about 6% of the worker's CPU in the
// benchmark's profile (runtime.newstack and copystack), and about 2.5%
// when grown here, where the stack is still shallow, in one step.
//
//go:noinline
func growStack() {
	var frame [handlerStack - 4<<10]byte
	stackSink(&frame)
}

// stackSink keeps the frame growStack asks for from being optimised
// away; it does nothing.
//
//go:noinline
func stackSink(*[handlerStack - 4<<10]byte) {}
