user "ignored" {
  password = "not read"
}
