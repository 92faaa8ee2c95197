listen {
  address = "127.0.0.1:6432"
}
