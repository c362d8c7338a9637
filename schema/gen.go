package schema

//go:generate go run ../internal/schemagen/cmd/schemagen
