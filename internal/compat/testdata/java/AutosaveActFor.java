// PgJDBC with autosave=always (a SAVEPOINT before each statement of a
// transaction, ROLLBACK TO SAVEPOINT after one that fails) through a BI
// service's login that acts for viewers with SET ROLE inside a
// transaction. After each step, how many responses the service sees and
// what pgveil.act_for says upstream. Prints one JSON object a line.
//
// Usage: java -cp .:postgresql.jar AutosaveActFor URL USER PASSWORD

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

public class AutosaveActFor {
    static String q(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    static void out(String check, String fields) {
        System.out.println("{\"check\":" + q(check) + (fields.isEmpty() ? "" : "," + fields) + "}");
    }

    static String err(SQLException e) {
        return "\"sqlstate\":" + q(e.getSQLState()) + ",\"message\":" + q(e.getMessage());
    }

    static void exec(Connection c, String check, String sql) {
        try (Statement st = c.createStatement()) {
            st.execute(sql);
            out(check, "\"sqlstate\":null");
        } catch (SQLException e) {
            out(check, err(e));
        }
    }

    // seen prints the responses the connection sees and pgveil.act_for.
    static void seen(Connection c, String check) {
        String fields;
        try (Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT count(*) FROM responses")) {
            rs.next();
            fields = "\"responses\":" + rs.getLong(1);
        } catch (SQLException e) {
            out(check, err(e));
            return;
        }
        try (Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT current_setting('pgveil.act_for', true)")) {
            rs.next();
            fields += ",\"act_for\":" + q(rs.getString(1)) + ",\"sqlstate\":null";
        } catch (SQLException e) {
            fields += "," + err(e);
        }
        out(check, fields);
    }

    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            c.setAutoCommit(false);
            exec(c, "set_marie", "SET ROLE marie");
            seen(c, "as_marie");
            exec(c, "fails", "SELECT 1/0");
            // The SET ROLE came before the savepoint rolled back to.
            seen(c, "as_marie_after_rollback_to");
            exec(c, "set_hq", "SET ROLE hq");
            exec(c, "fails_again", "SELECT 1/0");
            seen(c, "as_hq_after_rollback_to");
            exec(c, "set_unknown", "SET ROLE nobody_at_all");
            seen(c, "as_hq_after_failed_set");
            c.commit();
            seen(c, "as_hq_committed");
            exec(c, "set_marie_again", "SET ROLE marie");
            seen(c, "as_marie_again");
            c.rollback();
            seen(c, "as_hq_after_rollback");
            exec(c, "reset", "RESET ROLE");
            c.commit();
        }
    }
}
