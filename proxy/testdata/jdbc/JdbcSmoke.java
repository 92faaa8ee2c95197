// JdbcSmoke drives PgJDBC through pgveil the way BI tools do: plain
// statements, a PreparedStatement run past prepareThreshold (so the driver
// switches to a named server-side statement), a fetchSize cursor in a
// transaction (portals executed with a row limit), COPY through CopyManager,
// and metadata calls. It prints one "ok <check>" line per check and exits
// non-zero on the first failure.
import java.sql.*;
import java.io.*;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class JdbcSmoke {
    static void check(boolean cond, String what) {
        if (!cond) {
            System.out.println("FAIL " + what);
            System.exit(1);
        }
        System.out.println("ok " + what);
    }

    public static void main(String[] args) throws Exception {
        String url = args[0], user = args[1], password = args[2];
        try (Connection c = DriverManager.getConnection(url, user, password)) {
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT count(*) FROM items")) {
                rs.next();
                check(rs.getInt(1) == 100, "statement");
            }

            try (PreparedStatement ps = c.prepareStatement("SELECT name FROM items WHERE id = ?")) {
                for (int i = 1; i <= 10; i++) {
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        if (!rs.getString(1).equals("item " + i)) check(false, "prepared run " + i);
                    }
                }
                check(ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare(), "server-side prepared statement");
            }

            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.setFetchSize(7);
                int n = 0, last = 0;
                try (ResultSet rs = s.executeQuery("SELECT id FROM items ORDER BY id")) {
                    while (rs.next()) {
                        n++;
                        if (rs.getInt(1) != last + 1) check(false, "fetch order");
                        last = rs.getInt(1);
                    }
                }
                check(n == 100, "fetchSize cursor");
            }
            c.commit();
            c.setAutoCommit(true);

            try (Statement s = c.createStatement()) {
                s.executeUpdate("DELETE FROM sink WHERE note = 'jdbc'");
            }
            CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
            long in = cm.copyIn("COPY sink FROM STDIN", new StringReader("1\tjdbc\n2\tjdbc\n"));
            check(in == 2, "copy in");
            StringWriter out = new StringWriter();
            long outN = cm.copyOut("COPY (SELECT id FROM sink WHERE note = 'jdbc' ORDER BY id) TO STDOUT", out);
            check(outN == 2 && out.toString().equals("1\n2\n"), "copy out");

            DatabaseMetaData md = c.getMetaData();
            boolean found = false;
            try (ResultSet rs = md.getTables(null, "public", "items", new String[] {"TABLE"})) {
                found = rs.next();
            }
            check(found, "metadata getTables");

            try (Statement s = c.createStatement()) {
                s.executeQuery("SELECT 1/0");
                check(false, "error expected");
            } catch (SQLException e) {
                check("22012".equals(e.getSQLState()), "error sqlstate");
            }
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 'still usable'")) {
                rs.next();
                check(rs.getString(1).equals("still usable"), "session usable after error");
            }
        }
    }
}
