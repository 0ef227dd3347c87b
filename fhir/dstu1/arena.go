package dstu1

// arena hands out Nodes and child slices in chunks: a parse allocates a few large blocks instead of one
// object per element, which is most of the parse cost. Everything stays ordinary Go memory; a slice
// handed out has cap == len, so a later append by a caller copies instead of overwriting a neighbour.
type arena struct {
	nodes []Node
	ptrs  []*Node
}

const arenaChunk = 128

func (a *arena) node() *Node {
	if len(a.nodes) == cap(a.nodes) {
		a.nodes = make([]Node, 0, arenaChunk)
	}
	a.nodes = append(a.nodes, Node{})
	return &a.nodes[len(a.nodes)-1]
}

// children returns a copy of kids with cap == len.
func (a *arena) children(kids []*Node) []*Node {
	if len(kids) == 0 {
		return nil
	}
	if len(kids) > arenaChunk/2 {
		return append([]*Node(nil), kids...)
	}
	if cap(a.ptrs)-len(a.ptrs) < len(kids) {
		a.ptrs = make([]*Node, 0, 4*arenaChunk)
	}
	start := len(a.ptrs)
	a.ptrs = append(a.ptrs, kids...)
	return a.ptrs[start:len(a.ptrs):len(a.ptrs)]
}
