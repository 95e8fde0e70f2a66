package translator

// Describer is implemented by translators that document what they publish,
// for "pulsetranslator docs": the kinds of messages, the words of their
// routing keys, and their schemas. The core asks for it with a type
// assertion; a translator need not implement it.
type Describer interface {
	Describe() []OutputDoc
}

// OutputDoc describes one kind of message a translator publishes.
type OutputDoc struct {
	// To names the pipeline output it goes to ("" for the first), as
	// Output.To does.
	To string
	// Name identifies the kind, for example "build"; Title and Description
	// say what it is for a consumer.
	Name, Title, Description string
	// RoutingKey lists the words of its routing keys, in order.
	RoutingKey []KeyField
	// Schema names its JSON Schema, as Output.Schema does.
	Schema string
}

// KeyField is one word (or, with MultipleWords, any number of words) of a
// routing key, in the shape of taskcluster's exchanges reference.
type KeyField struct {
	Name    string `json:"name"`
	Summary string `json:"summary"`
	// Constant, when set, is the word's only value.
	Constant string `json:"constant,omitempty"`
	// MultipleWords marks a field of zero or more words.
	MultipleWords bool `json:"multipleWords"`
	Required      bool `json:"required"`
}
