// PgJDBC through pgveil: Statement, a PreparedStatement run past
// prepareThreshold (server-side prepared from the 5th execution on), a
// fetchSize cursor in a transaction, DatabaseMetaData.getTables and
// getColumns, ResultSetMetaData, a refused statement. Prints one JSON
// object a line (hand-written JSON: no library beyond the driver).
//
// Usage: java -cp .:postgresql.jar CompatClient URL USER PASSWORD

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;

public class CompatClient {
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

    static String arr(List<?> xs) {
        List<String> parts = new ArrayList<>();
        for (Object x : xs) {
            parts.add(x instanceof String ? q((String) x) : String.valueOf(x));
        }
        return "[" + String.join(",", parts) + "]";
    }

    static void out(String check, String fields) {
        System.out.println("{\"check\":" + q(check) + (fields.isEmpty() ? "" : "," + fields) + "}");
    }

    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            DatabaseMetaData md = c.getMetaData();
            out("version", "\"driver\":" + q(md.getDriverVersion()));

            try (Statement st = c.createStatement()) {
                List<String> countries = new ArrayList<>();
                try (ResultSet rs = st.executeQuery("SELECT DISTINCT country FROM responses ORDER BY 1")) {
                    while (rs.next()) {
                        countries.add(rs.getString(1));
                    }
                }
                out("countries", "\"values\":" + arr(countries));
                try (ResultSet rs = st.executeQuery("SELECT count(*) FILTER (WHERE contact IS NOT NULL), count(*) FILTER (WHERE email IS NOT NULL),"
                        + " count(*) FILTER (WHERE score IS NOT NULL) FROM responses")) {
                    rs.next();
                    out("masked", "\"contact\":" + rs.getLong(1) + ",\"email\":" + rs.getLong(2) + ",\"score\":" + rs.getLong(3));
                }
            }

            // prepareThreshold is 5: executions 5 and later use a named
            // server-side statement (Parse once, then Bind/Execute).
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM responses WHERE nps = ?")) {
                long total = 0;
                boolean serverPrepared = false;
                for (int nps = 0; nps <= 10; nps++) {
                    ps.setInt(1, nps);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        total += rs.getLong(1);
                    }
                    serverPrepared |= ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare();
                }
                out("prepared", "\"total\":" + total + ",\"server_prepared\":" + serverPrepared);
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM responses WHERE country = ? AND nps >= ?")) {
                ps.setString(1, "USA");
                ps.setInt(2, 0);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    out("param", "\"count\":" + rs.getLong(1));
                }
            }

            // ResultSetMetaData of SELECT *: the masked columns keep their
            // names and types.
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT * FROM responses LIMIT 0")) {
                ResultSetMetaData m = rs.getMetaData();
                List<String> names = new ArrayList<>();
                List<String> types = new ArrayList<>();
                for (int i = 1; i <= m.getColumnCount(); i++) {
                    names.add(m.getColumnName(i));
                    types.add(m.getColumnTypeName(i));
                }
                out("columns", "\"names\":" + arr(names) + ",\"types\":" + arr(types));
            }

            // fetchSize in a transaction: PgJDBC reads through a portal,
            // 50 rows per Execute.
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.setFetchSize(50);
                int rows = 0;
                int emails = 0;
                TreeSet<String> countries = new TreeSet<>();
                try (ResultSet rs = st.executeQuery("SELECT id, country, email FROM responses ORDER BY id")) {
                    while (rs.next()) {
                        rows++;
                        countries.add(rs.getString(2));
                        if (rs.getString(3) != null) {
                            emails++;
                        }
                    }
                }
                out("named_cursor", "\"rows\":" + rows + ",\"countries\":" + arr(new ArrayList<>(countries)) + ",\"emails\":" + emails);
            }
            c.commit();
            c.setAutoCommit(true);

            // DatabaseMetaData: what every JDBC tool (DBeaver, Metabase,
            // DataGrip, SQuirreL) reads to list tables and columns.
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) {
                    tables.add(rs.getString("TABLE_NAME"));
                }
            }
            out("tables", "\"names\":" + arr(tables));
            List<String> cols = new ArrayList<>();
            List<String> types = new ArrayList<>();
            List<Integer> sizes = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "public", "responses", "%")) {
                while (rs.next()) {
                    cols.add(rs.getString("COLUMN_NAME"));
                    types.add(rs.getString("TYPE_NAME"));
                    sizes.add(rs.getInt("COLUMN_SIZE"));
                }
            }
            out("meta_columns", "\"names\":" + arr(cols) + ",\"types\":" + arr(types) + ",\"sizes\":" + arr(sizes));
            List<String> pk = new ArrayList<>();
            try (ResultSet rs = md.getPrimaryKeys(null, "public", "responses")) {
                while (rs.next()) {
                    pk.add(rs.getString("COLUMN_NAME"));
                }
            }
            out("primary_key", "\"columns\":" + arr(pk));

            try (Statement st = c.createStatement()) {
                try {
                    st.executeQuery("SELECT login FROM employees").close();
                    out("refused", "\"sqlstate\":null");
                } catch (SQLException e) {
                    out("refused", "\"sqlstate\":" + q(e.getSQLState()) + ",\"message\":" + q(e.getMessage()));
                }
                try (ResultSet rs = st.executeQuery("SELECT 1")) {
                    rs.next();
                    out("usable_after_error", "\"value\":" + rs.getInt(1));
                }
            }

            // With autocommit off, PgJDBC sends BEGIN with the SET: the
            // setting outlives the commit.
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.execute("SET TimeZone = 'Asia/Tokyo'");
            }
            c.commit();
            TreeSet<String> zones = new TreeSet<>();
            for (int i = 0; i < 3; i++) {
                try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SHOW TimeZone")) {
                    rs.next();
                    zones.add(rs.getString(1));
                }
                c.commit();
            }
            c.setAutoCommit(true);
            out("tx_setting", "\"timezones\":" + arr(new ArrayList<>(zones)));
        }
    }
}
