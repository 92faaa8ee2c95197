-- Tool: DBeaver 23.x and DataGrip 2023.x (both on PgJDBC 42.x)
-- Protocol: extended
-- Reproduces: what the IDEs send when they open a connection and expand
-- the navigator: server and session probes (SHOW search_path,
-- current_schema(), set_config('application_name', …) to name the
-- editor), pg_catalog-heavy metadata reads (pg_namespace, pg_class with
-- c.*, pg_attribute with pg_get_expr, pg_type, pg_constraint,
-- pg_index, pg_description, pg_roles), then a data editor page and a
-- count. Taken from DBeaver's PostgreMetaModel / PostgreSchema and
-- DataGrip's introspector queries as logged by PostgreSQL.

SELECT version();
SHOW search_path;
SELECT current_schema(), session_user;
-- set_config passes when its first argument is a string literal naming
-- a setting SET may change (application_name here); set_config of
-- search_path, role or a computed name stays refused (pinned_settings).
-- Upstream the name keeps pgveil's tag of the user, "pgveil:<login>:",
-- which set_config's result shows (DBeaver ignores it).
SELECT set_config('application_name', 'DBeaver 23.3.0 - SQLEditor <Script-1.sql>', false);
SET application_name = 'DBeaver 23.3.0 - SQLEditor <Script-1.sql>';
SHOW application_name;
-- DataGrip's tablespaces and psql's \db: pg_tablespace_location shows a
-- directory of the server and answers NULL through pgveil ('' upstream
-- for pg_default and pg_global).
select ts.oid, ts.spcname, ts.spcowner, pg_tablespace_location(ts.oid) as location from pg_catalog.pg_tablespace ts order by spcname;
select string_agg(word, ',') from pg_catalog.pg_get_keywords() where word <> ALL ('{a,abs,absolute,action,ada,add,admin,after,all,allocate,alter,always,and,any,are,array,as,asc,asensitive,assertion,assignment,asymmetric,at,atomic,attribute,attributes,authorization,avg,before,begin,bernoulli,between,bigint,binary,blob,boolean,both,breadth,by,c,call,called,cardinality,cascade,cascaded,case,cast,catalog,catalog_name,ceil,ceiling,chain,char,char_length,character,character_length,character_set_catalog,character_set_name,character_set_schema,characteristics,characters,check,checked,class_origin,clob,close,coalesce,cobol,code_units,collate,collation,collation_catalog,collation_name,collation_schema,collect,column,column_name,command_function,command_function_code,commit,committed,condition,condition_number,connect,connection_name,constraint,constraint_catalog,constraint_name,constraint_schema,constraints,constructors,contains,continue,convert,corr,corresponding,count,covar_pop,covar_samp,create,cross,cube,cume_dist,current,current_collation,current_date,current_default_transform_group,current_path,current_role,current_time,current_timestamp,current_transform_group_for_type,current_user,cursor,cursor_name,cycle,data,date,datetime_interval_code,datetime_interval_precision,day,deallocate,dec,decimal,declare,default,defaults,deferrable,deferred,defined,definer,degree,delete,dense_rank,depth,deref,derived,desc,describe,descriptor,deterministic,diagnostics,disconnect,dispatch,distinct,domain,double,drop,dynamic,dynamic_function,dynamic_function_code,each,element,else,end,end-exec,equals,escape,every,except,exception,exclude,excluding,exec,execute,exists,exp,external,extract,false,fetch,filter,final,first,float,floor,following,for,foreign,fortran,found,free,from,full,function,fusion,g,general,get,global,go,goto,grant,granted,group,grouping,having,hierarchy,hold,hour,identity,immediate,implementation,in,including,increment,indicator,initially,inner,inout,input,insensitive,insert,instance,instantiable,int,integer,intersect,intersection,interval,into,invoker,is,isolation,join,k,key,key_member,key_type,language,large,last,lateral,leading,left,length,level,like,ln,local,localtime,localtimestamp,locator,lower,m,map,match,matched,max,maxvalue,member,merge,message_length,message_octet_length,message_text,method,min,minute,minvalue,mod,modifies,module,month,more,multiset,mumps,name,names,national,natural,nchar,nclob,nesting,new,next,no,none,normalize,normalized,not,null,nullable,nullif,nulls,number,numeric,object,octet_length,octets,of,old,on,only,open,option,options,or,order,ordering,ordinality,others,out,outer,output,over,overlaps,overlay,overriding,pad,parameter,parameter_mode,parameter_name,parameter_ordinal_position,parameter_specific_catalog,parameter_specific_name,parameter_specific_schema,partial,partition,pascal,path,percent_rank,percentile_cont,percentile_disc,placing,pli,position,power,preceding,precision,prepare,preserve,primary,prior,privileges,procedure,public,range,rank,read,reads,real,recursive,ref,references,referencing,regr_avgx,regr_avgy,regr_count,regr_intercept,regr_r2,regr_slope,regr_sxx,regr_sxy,regr_syy,relative,release,repeatable,restart,result,return,returned_cardinality,returned_length,returned_octet_length,returned_sqlstate,returns,revoke,right,role,rollback,rollup,routine,routine_catalog,routine_name,routine_schema,row,row_count,row_number,rows,savepoint,scale,schema,schema_name,scope_catalog,scope_name,scope_schema,scroll,search,second,section,security,select,self,sensitive,sequence,serializable,server_name,session,session_user,set,sets,similar,simple,size,smallint,some,source,space,specific,specific_name,specifictype,sql,sqlexception,sqlstate,sqlwarning,sqrt,start,state,statement,static,stddev_pop,stddev_samp,structure,style,subclass_origin,submultiset,substring,sum,symmetric,system,system_user,table,table_name,tablesample,temporary,then,ties,time,timestamp,timezone_hour,timezone_minute,to,top_level_count,trailing,transaction,transaction_active,transactions_committed,transactions_rolled_back,transform,transforms,translate,translation,treat,trigger,trigger_catalog,trigger_name,trigger_schema,trim,true,type,uescape,unbounded,uncommitted,under,union,unique,unknown,unnamed,unnest,update,upper,usage,user,user_defined_type_catalog,user_defined_type_code,user_defined_type_name,user_defined_type_schema,using,value,values,var_pop,var_samp,varchar,varying,view,when,whenever,where,width_bucket,window,with,within,without,work,write,year,zone}'::text[]);
-- expect: same
SELECT db.oid, db.* FROM pg_catalog.pg_database db WHERE datname = 'feedback';
-- (source is "client" through pgveil, which sets it at start-up)
select * from pg_catalog.pg_settings where name = 'standard_conforming_strings';
-- expect: same
SELECT n.oid, n.*, d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = n.oid AND d.objsubid = 0 AND d.classoid = 'pg_namespace'::regclass ORDER BY nspname;
-- expect: same
SELECT t.oid, t.*, c.relkind, format_type(nullif(t.typbasetype, 0), t.typtypmod) as base_type_name, d.description FROM pg_catalog.pg_type t LEFT OUTER JOIN pg_catalog.pg_type et ON et.oid = t.typelem LEFT OUTER JOIN pg_catalog.pg_class c ON c.oid = t.typrelid LEFT OUTER JOIN pg_catalog.pg_description d ON t.oid = d.objoid WHERE t.typname IS NOT NULL AND (c.relkind IS NULL OR c.relkind = 'c') AND (et.typcategory IS NULL OR et.typcategory <> 'C') AND t.typnamespace = 'public'::regnamespace ORDER BY t.oid;
-- Table sizes are answered NULL: a size tells how many rows a governed
-- table holds beyond the user's.
-- expect: null total_rel_size rel_size
select c.oid, pg_catalog.pg_total_relation_size(c.oid) as total_rel_size, pg_catalog.pg_relation_size(c.oid) as rel_size FROM pg_catalog.pg_class c WHERE c.relnamespace = 'public'::regnamespace;
-- The tables of public: c.* includes reltuples, which pgveil hides for
-- user tables (-1, as for a table never analysed).
select c.oid, c.*, t.relname as tabrelname, rt.relnamespace as refnamespace, d.description, null as partition_expr, null as partition_key FROM pg_catalog.pg_class c LEFT OUTER JOIN pg_catalog.pg_class t ON t.oid = c.reltoastrelid LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid = c.reloftype LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = c.oid AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass WHERE c.relnamespace = 'public'::regnamespace AND c.relkind not in ('i', 'I', 'c') ORDER BY c.oid;
-- expect: same
select c.oid, a.*, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value, dsc.description, dep.objid FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON (a.attrelid = c.oid) LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid = ad.adrelid AND a.attnum = ad.adnum) LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid = dsc.objoid AND a.attnum = dsc.objsubid) LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum and dep.classid = dep.refclassid WHERE NOT a.attisdropped AND c.relkind not in ('i', 'I', 'c') AND c.oid = 'public.responses'::regclass ORDER BY a.attnum;
-- expect: same
SELECT c.oid, c.*, t.relname as tabrelname, case when c.contype = 'c' then substr(pg_catalog.pg_get_constraintdef(c.oid), 7) else null end consrc_copy FROM pg_catalog.pg_constraint c INNER JOIN pg_catalog.pg_class t ON t.oid = c.conrelid WHERE t.relkind <> 'c' AND t.relnamespace = 'public'::regnamespace AND c.conrelid = 'public.responses'::regclass ORDER BY c.oid;
-- expect: same
SELECT i.*, i.indkey as keys, c.relname, c.relnamespace, c.relam, c.reltablespace, tc.relname as tabrelname, dsc.description, pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr, pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr FROM pg_catalog.pg_index i INNER JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid INNER JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid = dsc.objoid WHERE i.indrelid = 'public.responses'::regclass ORDER BY tc.relname;
-- expect: same
SELECT a.oid, a.rolname, a.rolsuper, a.rolinherit, a.rolcreaterole, a.rolcreatedb, a.rolcanlogin FROM pg_catalog.pg_roles a WHERE a.rolname = current_user;
-- DataGrip: the column list of every table of a schema in one query.
-- expect: same
select T.oid as table_id, C.attnum as column_position, C.attname as column_name, C.atttypmod as type_mod, C.attndims as dimensions_number, pg_catalog.format_type(C.atttypid, C.atttypmod) as type_spec, C.atttypid as type_id, C.attnotnull as mandatory, pg_catalog.pg_get_expr(D.adbin, T.oid) as default_expression from pg_catalog.pg_class T join pg_catalog.pg_attribute C on T.oid = C.attrelid left join pg_catalog.pg_attrdef D on (C.attrelid, C.attnum) = (D.adrelid, D.adnum) where T.relnamespace = 'public'::regnamespace and T.relkind in ('r', 'm', 'v', 'f', 'p') and C.attnum > 0 and not C.attisdropped order by T.relname, C.attnum;

-- The data editor: a page of the table, then the row count.
SELECT * FROM public.responses LIMIT 200;
SELECT count(*) FROM public.responses;
SELECT x.* FROM public.responses x WHERE x.country = 'France' ORDER BY x.id LIMIT 200;
