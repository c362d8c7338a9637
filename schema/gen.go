package schema

//go:generate go run ../internal/devcmd/schemagen
