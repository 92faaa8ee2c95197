import java.sql.*;

/**
 * Does what Metabase does on each checkout of its shared connection with
 * connection impersonation: SET ROLE <viewer>, the viewer's questions,
 * SET ROLE NONE. Prints one line per question; the Go test checks them.
 * Args: url user password.
 */
public class JdbcImpersonation {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            // A question Metabase runs as a PreparedStatement: PgJDBC
            // prepares it server-side once it ran prepareThreshold times.
            PreparedStatement q = c.prepareStatement("SELECT count(*) FROM responses WHERE nps >= ?");
            // The switch itself as a reused PreparedStatement too: once
            // server-side, PgJDBC sends only Bind and Execute for it.
            PreparedStatement asHq = c.prepareStatement("SET ROLE hq");
            String[] viewers = {"marie", "hq", "marie", "hq", "marie", "hq", "marie", "hq"};
            for (int i = 0; i < viewers.length; i++) {
                String v = viewers[i];
                if (v.equals("hq")) {
                    asHq.execute();
                } else {
                    try (Statement st = c.createStatement()) {
                        st.execute("SET ROLE " + v + ";");
                    }
                }
                q.setInt(1, 0);
                try (ResultSet rs = q.executeQuery()) {
                    rs.next();
                    System.out.println("checkout " + i + " as " + v + ": " + rs.getLong(1));
                }
                try (Statement st = c.createStatement()) {
                    st.execute("SET ROLE NONE;");
                }
                q.setInt(1, 0);
                try (ResultSet rs = q.executeQuery()) {
                    rs.next();
                    System.out.println("checkout " + i + " after: " + rs.getLong(1));
                }
            }
            // With autocommit off PgJDBC sends BEGIN in the same batch as
            // the first statement of a transaction: here, SET ROLE.
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.execute("SET ROLE marie;");
            }
            q.setInt(1, 0);
            try (ResultSet rs = q.executeQuery()) {
                rs.next();
                System.out.println("in a transaction as marie: " + rs.getLong(1));
            }
            c.commit();
            try (Statement st = c.createStatement()) {
                st.execute("SET ROLE NONE;");
            }
            c.commit();
            c.setAutoCommit(true);
            try (Statement st = c.createStatement()) {
                st.execute("SET ROLE survey_admin;");
                System.out.println("not refused");
            } catch (SQLException e) {
                System.out.println("refused " + e.getSQLState());
            }
            q.setInt(1, 0);
            try (ResultSet rs = q.executeQuery()) {
                rs.next();
                System.out.println("after refusal: " + rs.getLong(1));
            }
        }
    }
}
