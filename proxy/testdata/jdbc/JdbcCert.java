// JdbcCert logs in to pgveil with a TLS client certificate, the way PgJDBC
// users configure it: sslmode=verify-full, sslrootcert, sslcert and sslkey
// (PKCS#8 DER) in the URL, no password. It prints "ok <value>" after one
// query, or "refused: <message>" when the connection is refused.
import java.sql.*;

public class JdbcCert {
    public static void main(String[] args) throws Exception {
        String url = args[0], user = args[1];
        java.util.Properties p = new java.util.Properties();
        p.setProperty("user", user);
        try (Connection c = DriverManager.getConnection(url, p);
             Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT 'cert-' || count(*) FROM items")) {
            rs.next();
            System.out.println("ok " + rs.getString(1));
        } catch (SQLException e) {
            System.out.println("refused: " + e.getSQLState() + " " + e.getMessage());
        }
    }
}
